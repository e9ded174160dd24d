"""The fleet service's benchmark: workers on a three-server NATS JetStream cluster."""
