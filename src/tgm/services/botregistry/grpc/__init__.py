"""The registry's inbound side: gRPC servicers."""
