"""refundflow: the customer-refund procedure, run on Excel files in a shared folder."""

__version__ = "0.1.0"
