#include "fractrain/util/directory_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "fractrain/util/error.h"
#include "fractrain/util/host_name.h"

namespace fractrain {
namespace {

// "process 1234 on host, since 2026-12-01 22:40:00 UTC", or "" when the file says nothing readable.
std::string holder_of(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string this_holder() {
  const std::time_t now = std::time(nullptr);
  char when[64] = {0};
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  std::ostringstream s;
  s << "process " << ::getpid() << " on " << host_name() << ", since " << when << "\n";
  return s.str();
}

}  // namespace

DirectoryLock::DirectoryLock(const std::string& dir, const std::string& writer, const std::string& elsewhere)
    : path_((std::filesystem::path(dir) / kFileName).string()) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int err = errno;
    throw Error("cannot write in " + dir + " (" + path_ + ": " + std::strerror(err) +
                "): choose a directory this user can write (" + elsewhere + ")");
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK) {
      const std::string holder = holder_of(path_);
      throw Error(dir + " is in use by another " + writer + (holder.empty() ? "" : " (" + holder + ")") +
                  ": wait for it to end, or choose another directory (" + elsewhere + ")");
    }
    throw Error("cannot lock " + path_ + ": " + std::strerror(err));
  }
  // Name the holder for the message a second writer gets. Best effort: the lock itself is the flock.
  const std::string holder = this_holder();
  if (::ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] const ssize_t written = ::pwrite(fd_, holder.data(), holder.size(), 0);
  }
}

DirectoryLock::~DirectoryLock() { release(); }

DirectoryLock::DirectoryLock(DirectoryLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

DirectoryLock& DirectoryLock::operator=(DirectoryLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

// Closing the descriptor drops the flock. The file is not removed: unlinking it while another process has it
// open would let two processes each lock a different inode of the same name.
void DirectoryLock::release() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

DirectoryLock create_and_lock_directory(const std::string& dir, const std::string& setting, const std::string& writer,
                                        const std::string& elsewhere) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw Error(setting + " = '" + dir + "' is a file, not a directory: choose another directory (" + elsewhere + ")");
  fs::create_directories(dir, ec);
  if (ec)
    throw Error(setting + " = '" + dir + "' cannot be created: " + ec.message() + "; choose another directory (" +
                elsewhere + ")");
  return DirectoryLock(dir, writer, elsewhere);
}

}  // namespace fractrain
