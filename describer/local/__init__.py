"""The whole system on one machine: the AWS emulator, the local model host, the demo and its gallery."""
