//! tidewire: Socket.IO for axum (being built).
