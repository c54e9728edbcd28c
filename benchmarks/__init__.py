"""Performance benchmarks of dicom.network (see benchmarks/README.md)."""
