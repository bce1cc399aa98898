"""The adapters: the code that talks to a system outside the process (Redis presence, the
Socket.IO message queue, Prometheus metrics, the PSA's HTTP API). The edges (`web/`,
`workers/`) use them and hand the domain what they learn; `models/` imports none of them."""
