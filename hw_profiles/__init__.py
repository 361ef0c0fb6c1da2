"""hw_profiles: declarative box SKUs (ISA, cores, memory budgets, accelerators, thermal bands,
watchdog and serial ports), detection of the machine we run on, and the memory-fit planner.

Not built yet: issue 3 owns it. It will be the single source of truth every other package reads.
"""
