#include "fractrain/util/gnuplot.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
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

}  // namespace

std::string gnuplot_quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return out + "\"";
}

std::string series_colour(size_t index) {
  static constexpr const char* kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                             "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aec7e8"};
  return kColours[index % std::size(kColours)];
}

std::string gnuplot_terminal(const std::string& output_path, int width, int height) {
  const bool svg = std::filesystem::path(output_path).extension() == ".svg";
  return "set terminal " +
         (svg ? "svg size " + std::to_string(width) + "," + std::to_string(height) + " dynamic"
              : "pngcairo size " + std::to_string(width) + "," + std::to_string(height)) +
         " noenhanced\nset output " + gnuplot_quoted(output_path) + "\n";
}

void run_gnuplot(const std::string& script, const std::string& output_path) {
  const std::string script_path = output_path + ".gp";
  std::ofstream(script_path) << script;
  const std::string command = "gnuplot " + gnuplot_quoted(script_path) + " 2>&1";
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

bool gnuplot_available() { return std::system("command -v gnuplot > /dev/null 2>&1") == 0; }

void plot_lines(const PlotSpec& spec, const std::string& output_path) {
  std::ostringstream script;
  script << gnuplot_terminal(output_path, 900, 520) << "set datafile separator ','\nset key outside bottom center horizontal\nset grid\n"
         << "set title " << gnuplot_quoted(spec.title) << "\nset xlabel " << gnuplot_quoted(spec.x_label) << "\n"
         << "set ylabel " << gnuplot_quoted(spec.y_label) << "\n";
  if (spec.log_x) script << "set logscale x\n";
  if (spec.log_y) script << "set logscale y\n";
  if (!spec.y2_label.empty()) script << "set y2label " << gnuplot_quoted(spec.y2_label) << "\nset y2tics\nset ytics nomirror\n";
  script << "plot ";
  for (size_t i = 0; i < spec.series.size(); ++i) {
    const PlotSeries& s = spec.series[i];
    script << (i ? ", " : "") << gnuplot_quoted(s.csv_path) << " using " << column_index(s.csv_path, s.x_column) << ":"
           << column_index(s.csv_path, s.y_column) << " every ::1 with " << s.style << " lc rgb "
           << gnuplot_quoted(series_colour(i)) << " title " << gnuplot_quoted(s.title)
           << (s.right_axis ? " axes x1y2" : "");
  }
  script << "\n";
  run_gnuplot(script.str(), output_path);
}

void plot_heatmaps(const std::string& title, const std::vector<Heatmap>& maps, const std::string& output_path) {
  if (maps.empty()) throw Error("no heatmap to draw into " + output_path);
  const size_t rows = maps.front().rows.size(), columns = maps.front().columns.size();
  std::ostringstream script;
  script << gnuplot_terminal(output_path, static_cast<int>(260 + 300 * maps.size()), static_cast<int>(160 + 38 * rows));
  for (size_t m = 0; m < maps.size(); ++m) {
    script << "$map" << m << " << EOD\n";
    for (const auto& row : maps[m].values) {
      for (size_t c = 0; c < row.size(); ++c) script << (c ? " " : "") << row[c];
      script << "\n";
    }
    script << "EOD\n";
  }
  script << "set multiplot layout 1," << maps.size() << " title " << gnuplot_quoted(title) << "\n"
         << "set cbrange [0:1]\nset palette defined (0 'white', 1 '#08306b')\nunset colorbox\n"
         << "set xrange [-0.5:" << columns - 0.5 << "]\nset yrange [" << rows - 0.5 << ":-0.5]\n"
         << "set xtics rotate by -45 (";
  for (size_t c = 0; c < columns; ++c)
    script << (c ? ", " : "") << gnuplot_quoted(maps.front().columns[c]) << " " << c;
  script << ")\nset ytics (";
  for (size_t r = 0; r < rows; ++r) script << (r ? ", " : "") << gnuplot_quoted(maps.front().rows[r]) << " " << r;
  script << ")\n";
  for (size_t m = 0; m < maps.size(); ++m) {
    script << "set title " << gnuplot_quoted(maps[m].title) << "\n"
           << "plot $map" << m << " matrix with image notitle, $map" << m
           << " matrix using 1:2:($3 >= 0.005 ? sprintf('%.2f', $3) : '') with labels font ',8' notitle\n";
  }
  script << "unset multiplot\n";
  run_gnuplot(script.str(), output_path);
}

}  // namespace fractrain
