#include "fractrain/util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fractrain/util/error.h"

namespace fractrain {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

std::string parent_directory(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Closes the temp file and unlinks it unless the rename went through, so that a failed save leaves no
// stray "<path>.tmp.<pid>" behind.
class TempFile {
 public:
  TempFile(std::string target, std::string path) : target_(std::move(target)), path_(std::move(path)) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    close_quietly();
    if (!committed_) ::unlink(path_.c_str());
  }
  void open() {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd_ < 0) {
      const int err = errno;
      throw Error("cannot write '" + target_ + "': cannot create the temporary file '" + path_ +
                  "': " + errno_text(err) + "; check that the directory exists and is writable");
    }
  }
  int fd() const { return fd_; }
  // close() can report a deferred write error (NFS, quota), so its result matters before the rename.
  void close_checked() {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) {
      const int err = errno;
      throw Error("cannot write '" + target_ + "': closing '" + path_ + "' failed: " + errno_text(err));
    }
  }
  void mark_committed() { committed_ = true; }
  const std::string& path() const { return path_; }

 private:
  void close_quietly() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  std::string target_;
  std::string path_;
  int fd_ = -1;
  bool committed_ = false;
};

// The rename is only durable once the directory entry is on disk. File systems that cannot fsync a
// directory (EINVAL/ENOTSUP) have nothing to flush, so those are not errors.
void sync_directory(const std::string& dir, const std::string& path_for_errors) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw Error("wrote '" + path_for_errors + "' but cannot open its directory '" + dir +
                "' to make the rename durable: " + errno_text(err));
  }
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL && err != ENOTSUP) {
    throw Error("wrote '" + path_for_errors + "' but cannot fsync its directory '" + dir + "': " + errno_text(err));
  }
}

}  // namespace

namespace detail {

void write_all(int fd, const std::string& bytes, const std::string& path_for_errors) {
  const char* data = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, data, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      throw Error("cannot write '" + path_for_errors + "' (" + std::to_string(bytes.size() - left) + " of " +
                  std::to_string(bytes.size()) + " bytes written): " + errno_text(err) +
                  "; free some disk space or choose another output directory");
    }
    if (n == 0) {  // write(2) should not return 0 for a regular file; refuse to spin forever
      throw Error("cannot write '" + path_for_errors + "': the device accepted no bytes (" +
                  std::to_string(bytes.size() - left) + " of " + std::to_string(bytes.size()) + " written)");
    }
    data += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace detail

void write_file_atomically(const std::string& path, const std::string& bytes) {
  TempFile temp(path, path + ".tmp." + std::to_string(::getpid()));
  temp.open();
  detail::write_all(temp.fd(), bytes, path);
  if (::fsync(temp.fd()) != 0) {
    const int err = errno;
    throw Error("cannot write '" + path + "': fsync of '" + temp.path() + "' failed: " + errno_text(err));
  }
  temp.close_checked();
  if (::rename(temp.path().c_str(), path.c_str()) != 0) {
    const int err = errno;
    throw Error("cannot replace '" + path + "' with '" + temp.path() + "': " + errno_text(err));
  }
  temp.mark_committed();
  sync_directory(parent_directory(path), path);
}

}  // namespace fractrain
