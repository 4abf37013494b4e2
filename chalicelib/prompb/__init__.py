"""Code generated from proto/ by `make proto`. Never edit the *_pb2.py files by hand."""
