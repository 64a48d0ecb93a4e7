"""Data subjects: sessions opened by SMS, their own views and changes, erasure and
correction, and the register of their requests."""
