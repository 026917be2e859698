#pragma once
// Draws line charts with gnuplot (Debian package gnuplot-nox): results a person would rather see than read.
#include <cstddef>
#include <string>
#include <vector>

namespace fractrain {

struct PlotSeries {
  std::string title;
  std::string csv_path;
  std::string x_column, y_column;  // CSV header names
  bool right_axis = false;         // plot against the y2 axis
  std::string style = "linespoints";  // gnuplot's `with`: linespoints, lines, points, steps
};

struct PlotSpec {
  std::string title, x_label, y_label, y2_label;
  std::vector<PlotSeries> series;
  bool log_x = false;  // for x values spanning orders of magnitude (FP32 against low-precision cost)
  bool log_y = false;  // the left axis only
};

bool gnuplot_available();

// Renders `spec` to `output_path` (.png or .svg by extension). Throws fractrain::Error when gnuplot fails
// (the message includes gnuplot's own output) or a column is missing from a CSV file.
void plot_lines(const PlotSpec& spec, const std::string& output_path);

// A blocks x options grid of fractions in [0, 1] (DFQ's bit allocation), drawn as one panel of a heatmap row.
struct Heatmap {
  std::string title;
  std::vector<std::string> rows, columns;
  std::vector<std::vector<double>> values;  // [row][column]
};
// The maps side by side (same rows and columns), numbers printed in the cells.
void plot_heatmaps(const std::string& title, const std::vector<Heatmap>& maps, const std::string& output_path);

// Twelve distinct colours (matplotlib's tab10 + black + light blue), cycled: gnuplot's default cycle of 8
// gives a 9th series the 1st one's colour.
std::string series_colour(size_t index);

// The pieces, for other charts: a terminal for .png/.svg, a quoted string, and running a script (throws
// fractrain::Error with gnuplot's output when it fails).
std::string gnuplot_terminal(const std::string& output_path, int width, int height);
std::string gnuplot_quoted(const std::string& s);
void run_gnuplot(const std::string& script, const std::string& output_path);

}  // namespace fractrain
