#pragma once
// Draws line charts with gnuplot (Debian package gnuplot-nox): results a person would rather see than read.
#include <string>
#include <vector>

namespace fractrain {

struct PlotSeries {
  std::string title;
  std::string csv_path;
  std::string x_column, y_column;  // CSV header names
  bool right_axis = false;         // plot against the y2 axis
};

struct PlotSpec {
  std::string title, x_label, y_label, y2_label;
  std::vector<PlotSeries> series;
};

bool gnuplot_available();

// Renders `spec` to `output_path` (.png or .svg by extension). Throws fractrain::Error when gnuplot fails
// (the message includes gnuplot's own output) or a column is missing from a CSV file.
void plot_lines(const PlotSpec& spec, const std::string& output_path);

}  // namespace fractrain
