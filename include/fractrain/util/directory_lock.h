#pragma once
// An exclusive, advisory lock on a directory that a process writes into (a run's output.dir, a sweep's output
// directory), so that two writers cannot interleave their files. The lock is flock(2) on DIR/LOCK_NAME: the
// kernel drops it when its holder exits, however it exits, so the lock of a dead process never blocks a new one
// (the file itself stays behind, naming its last holder, and means nothing once unlocked).
#include <string>

namespace fractrain {

class DirectoryLock {
 public:
  // Takes the lock on `dir` (which must exist) or throws fractrain::Error naming the directory, the process
  // that holds it (as written in the lock file) and the fix. `writer` names the writer in messages (e.g.
  // "fractrain run"), `elsewhere` says how to choose another directory (e.g. "--set output.dir=PATH").
  DirectoryLock(const std::string& dir, const std::string& writer, const std::string& elsewhere);
  ~DirectoryLock();
  DirectoryLock(DirectoryLock&& other) noexcept;
  DirectoryLock& operator=(DirectoryLock&& other) noexcept;
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

  const std::string& lock_path() const { return path_; }

  // The file name of the lock inside the directory.
  static constexpr const char* kFileName = "fractrain.lock";

 private:
  void release() noexcept;
  int fd_ = -1;
  std::string path_;
};

// Creates `dir` (and its parents) if needed and locks it: an Error, never a filesystem_error, says why it cannot
// (a read-only file system, a path through a regular file, no permission). `setting` names where the path came
// from in messages (e.g. "output.dir"); `writer` and `elsewhere` are as for DirectoryLock.
DirectoryLock create_and_lock_directory(const std::string& dir, const std::string& setting, const std::string& writer,
                                        const std::string& elsewhere);

}  // namespace fractrain
