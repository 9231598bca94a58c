"""Core of the NER handler, kept apart from TorchServe: protocol, settings, requests, bodies (KServe v1 / v2),
tokenization, windows, batching, decoding and checkpoint files.

Nothing here imports TorchServe. ``protocol`` and ``checkpoint`` use the standard library only (the gateway
imports them without torch); ``tokenization`` reads the checkpoint's tokenizer files through transformers;
``requests``, ``bodies``, ``windows``, ``batch`` and ``decoding`` are pure functions of text, word pieces, offsets,
scores and ``id2label``; ``linear_kernels`` (oneDNN's Linear for the worker's model) imports torch.
"""
