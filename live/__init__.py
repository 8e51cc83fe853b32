"""Live job updates over WebSocket: the hub that fans out store changes and its endpoint."""
