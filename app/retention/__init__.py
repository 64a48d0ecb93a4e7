"""Retention: ``smsreg purge`` applies every area's purge steps, in short batches."""
