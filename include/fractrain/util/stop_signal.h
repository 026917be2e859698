#pragma once
// SIGINT / SIGTERM ask a long job to stop at the next safe point (the trainer then writes a checkpoint).
// A second SIGINT (two seconds or more after the first) exits at once.
namespace fractrain {

void install_stop_handlers();
bool stop_requested();
void clear_stop_request();

}  // namespace fractrain
