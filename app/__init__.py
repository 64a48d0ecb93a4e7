"""smsreg: SMS verification and a purpose-bound phone-number registry."""
