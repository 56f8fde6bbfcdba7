//! The receiving entity's negotiation (RFC 6120 §4.3.2, §5.4.3.3).
