//! A local OCI registry (Debian's docker-registry) on 127.0.0.1 and a fault-injecting proxy in front of it.
