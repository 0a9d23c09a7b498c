"""botregistry: owns bots and their settings; serves RegistryService over gRPC."""
