"""`orbox quantize llm`: a Hugging Face decoder checkpoint becomes gated GGUF files in a model bundle.

Stages, in order: `source` (read and check the safetensors checkpoint), `export` (our F32/F16/BF16 GGUF
converter, with `architecture` mapping HF tensors and hyper-parameters and `tokenizer` the GGUF tokenizer
metadata), `quantize` (llama.cpp k-quants), `gates` (structural, tokenizer, converter parity, KLD, smoke),
`publish` (run the stages and write the model bundle); `cli` and `bench` on top.
"""
