from orbox.cli import main

main()
