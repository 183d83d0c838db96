"""The tiny student's default shape, in a module that imports nothing heavy.

``rules/common.smk`` validates ``student.tiny`` at parse time (through ``redi.plan``), and that
runs in the user's Snakemake environment, which may hold only snakemake and PyYAML (
item 2): this dict must not live beside the tokenizer/pandas code of ``student.py``.
"""

TINY_DEFAULTS = {
    "vocab_size": 1024,
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
    "seed": 0,
}
