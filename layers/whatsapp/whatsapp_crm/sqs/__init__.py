"""SQS adapters: the webhook -> responder hand-off queue and the responder's visibility changes."""
