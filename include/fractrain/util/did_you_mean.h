#pragma once
#include <string>
#include <vector>

namespace fractrain {

// Edit distance (insertions, deletions, substitutions).
size_t edit_distance(const std::string& a, const std::string& b);

// "a, b or c": the choices a message offers.
std::string choice_list(const std::vector<std::string>& choices);

// "; did you mean 'x'?" for the closest candidate within a sensible distance, else "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace fractrain
