//! Protocol detection and parsers (HTTP/1.x, Redis RESP2/3, MySQL): pure and incremental.
