"""Key rings: rotation of the phone-encryption and blind-index keys, and their status."""
