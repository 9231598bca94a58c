"""Real-time gateway in front of TorchServe's inference API: WebSocket, Server-Sent Events, REST and a demo page.

TorchServe speaks plain HTTP request/response only; this ASGI app adds what interactive clients need (many
messages in flight on one WebSocket, document streaming in order, API keys, retries while a worker restarts)
and forwards every prediction to ``POST /predictions/<model>``, where TorchServe batches them dynamically.

Modules, one concern each: ``settings`` (the one configuration object), ``net`` (loopback predicates), ``auth`` (API
keys), ``errors`` (typed errors and their status codes), ``schemas`` (request validation), ``upstream`` (the pooled
TorchServe client with retries), ``coalescing`` (texts of many clients in one upstream request), ``chunking`` (pure
document splitting), ``streaming`` (ordered SSE over concurrent chunks, offset rebasing), ``websocket`` (the
WebSocket protocol), ``labels`` (the label legend), ``logs`` (redaction and the access log), ``services`` (what the
endpoints share), ``app`` (routes and lifespan), ``__main__`` (uvicorn). The request/response protocol itself
(fields, options, headers, the error body) is ``nerserve.protocol``, shared with the handler.
"""
