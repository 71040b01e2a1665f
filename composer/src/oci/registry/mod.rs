//! Registry transfer: push an OCI image layout to a registry and pull images back.
