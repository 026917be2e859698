#include "fractrain/util/gnuplot.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fractrain/util/error.h"

namespace fractrain {
namespace {

// 1-based index of `column` in the CSV header of `path`.
int column_index(const std::string& path, const std::string& column) {
  std::ifstream in(path);
  std::string header;
  if (!std::getline(in, header)) throw Error("cannot plot " + path + ": file missing or empty");
  std::stringstream cells(header);
  std::string cell;
  for (int i = 1; std::getline(cells, cell, ','); ++i)
    if (cell == column) return i;
  throw Error("cannot plot " + path + ": no column '" + column + "' in its header");
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return out + "\"";
}

}  // namespace

bool gnuplot_available() { return std::system("command -v gnuplot > /dev/null 2>&1") == 0; }

void plot_lines(const PlotSpec& spec, const std::string& output_path) {
  const bool svg = std::filesystem::path(output_path).extension() == ".svg";
  std::ostringstream script;
  script << "set terminal " << (svg ? "svg size 900,520 dynamic" : "pngcairo size 900,520") << " noenhanced\n"
         << "set output " << quoted(output_path) << "\n"
         << "set datafile separator ','\nset key outside bottom center horizontal\nset grid\n"
         << "set title " << quoted(spec.title) << "\nset xlabel " << quoted(spec.x_label) << "\n"
         << "set ylabel " << quoted(spec.y_label) << "\n";
  if (!spec.y2_label.empty()) script << "set y2label " << quoted(spec.y2_label) << "\nset y2tics\nset ytics nomirror\n";
  script << "plot ";
  for (size_t i = 0; i < spec.series.size(); ++i) {
    const PlotSeries& s = spec.series[i];
    script << (i ? ", " : "") << quoted(s.csv_path) << " using " << column_index(s.csv_path, s.x_column) << ":"
           << column_index(s.csv_path, s.y_column) << " every ::1 with linespoints title " << quoted(s.title)
           << (s.right_axis ? " axes x1y2" : "");
  }
  script << "\n";
  const std::string script_path = output_path + ".gp";
  std::ofstream(script_path) << script.str();
  const std::string command = "gnuplot " + quoted(script_path) + " 2>&1";
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw Error("cannot run gnuplot: install it with `apt-get install gnuplot-nox`");
  std::array<char, 512> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  std::filesystem::remove(script_path);
  if (status != 0) throw Error("gnuplot failed drawing " + output_path + ": " + output);
}

}  // namespace fractrain
