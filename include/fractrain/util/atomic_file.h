#pragma once
// Crash-safe file replacement. A checkpoint or report is either the complete old file or the complete new
// one, never a torn mix: a run killed mid-save (Ctrl-C, OOM, power loss) must still resume from the last
// good checkpoint.
#include <string>

namespace fractrain {

// Writes `bytes` to `path + ".tmp.<pid>"` in the same directory (rename is atomic only within one file
// system), fsyncs it, renames it over `path` and fsyncs the directory so the rename itself is durable.
// Throws fractrain::Error naming the path and the errno text on any failure; the temp file is removed and
// an existing `path` is left untouched.
void write_file_atomically(const std::string& path, const std::string& bytes);

namespace detail {
// Writes all of `bytes` to the open descriptor `fd`, retrying short writes and EINTR. Throws
// fractrain::Error naming `path_for_errors` on failure (ENOSPC, EIO, EFBIG, ...). Exposed so that tests
// can drive the short-write path with /dev/full.
void write_all(int fd, const std::string& bytes, const std::string& path_for_errors);
}  // namespace detail

}  // namespace fractrain
