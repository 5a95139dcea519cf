"""System updates of the disk image: A/B root slots (slots), signed update
bundles in the firmware image format (bundle), what the running box offers
(platform: boot facts, the ESP, EFI variables, partitions) and the service the
CLI and REST share (service).  docs/IMAGE.md describes the flow."""
