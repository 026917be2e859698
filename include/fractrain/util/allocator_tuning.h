#pragma once
namespace fractrain {

// Keeps freed tensor memory in the process instead of returning it to the OS after every step (glibc's
// default), which otherwise costs tens of thousands of page faults per training step (measured: ~20K faults
// per ResNet-20 step, 1.7 us each). Both thresholds are set together: setting only the trim threshold
// disables glibc's adaptive mmap threshold and makes things much worse. Call once at startup.
void tune_allocator_for_training();

}  // namespace fractrain
