//! Raw C ABI of NVIDIA cuFile (filled by the cuFile backend issue).
