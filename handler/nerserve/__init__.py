"""Pure core of the NER handler: request parsing, windowing, batching and entity decoding.

Nothing here imports TorchServe; everything is a function of text, offsets, label ids and ``id2label``.
"""
