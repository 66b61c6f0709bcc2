// Progress display: \r-redrawn bar on terminals, one line per epoch elsewhere.
#include "vigil/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

namespace vigil {
namespace {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string epoch_label(std::string_view period, long epoch, const std::optional<long>& total) {
  return total ? fmt::format("{} {} ({} of {})", period, epoch, epoch + 1, *total)
               : fmt::format("{} {}", period, epoch);
}

// Display width of UTF-8 text: count the bytes that start a character.
std::size_t display_width(std::string_view s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

}  // namespace

ProgressDisplay::ProgressDisplay(std::FILE* out, ProgressOptions options, Clock clock)
    : sink_([out](std::string_view text) {
        std::fwrite(text.data(), 1, text.size(), out);
        std::fflush(out);
      }),
      options_(options),
      clock_(clock ? std::move(clock) : Clock(steady_seconds)) {
  live_ = options_.live.value_or(out != nullptr && ::isatty(::fileno(out)) == 1);
  options_.bar_width = std::max(options_.bar_width, 5);
}

ProgressDisplay::ProgressDisplay(std::ostream& out, ProgressOptions options, Clock clock)
    : sink_([&out](std::string_view text) {
        out.write(text.data(), static_cast<std::streamsize>(text.size()));
        out.flush();
      }),
      options_(options),
      clock_(clock ? std::move(clock) : Clock(steady_seconds)) {
  live_ = options_.live.value_or(false);
  options_.bar_width = std::max(options_.bar_width, 5);
}

std::string ProgressDisplay::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto total = static_cast<long long>(std::llround(seconds));
  const long long h = total / 3600, m = (total % 3600) / 60, s = total % 60;
  return h > 0 ? fmt::format("{}:{:02}:{:02}", h, m, s) : fmt::format("{}:{:02}", m, s);
}

void ProgressDisplay::write(std::string_view text) {
  sink_(text);
}

std::string ProgressDisplay::metrics_text(const Logs& logs) const {
  // Training metrics (loss first), then validation ones, then the learning rate; the epoch's
  // duration is shown separately.
  auto rank = [](const std::string& k) {
    if (k == "loss") return 0;
    if (k == "lr") return 4;
    if (k.rfind("val_", 0) == 0) return k == "val_loss" ? 2 : 3;
    return 1;
  };
  std::vector<const std::pair<const std::string, double>*> items;
  for (const auto& kv : logs)
    if (kv.first != "seconds" && kv.first != "epoch" && kv.first != "step") items.push_back(&kv);
  std::stable_sort(items.begin(), items.end(),
                   [&](auto* a, auto* b) { return rank(a->first) < rank(b->first); });
  std::string out;
  for (const auto* kv : items) {
    const double v = kv->second;
    out += fmt::format("  {} {}", kv->first,
                       std::isfinite(v)
                           ? fmt::format("{:.{}g}", v, options_.precision)
                           : std::string(std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf")));
  }
  return out;
}

void ProgressDisplay::on_epoch_begin(long epoch, std::optional<long> epochs_total,
                                     std::optional<long> batches_total, long first_batch) {
  finish();  // an unfinished bar of an epoch that never ended stays visible
  epoch_ = epoch;
  epochs_total_ = epochs_total;
  batches_total_ = batches_total;
  first_batch_ = std::max(first_batch, 0L);
  batches_done_ = first_batch_;
  epoch_start_ = clock_();
  last_draw_ = epoch_start_;
  drawn_ = false;
  last_width_ = 0;
  latest_.clear();
}

void ProgressDisplay::on_batch_end(long batch, const Logs& logs) {
  batches_done_ = batch + 1;
  latest_ = logs;
  if (!live_) return;
  const double now = clock_();
  const bool last = batches_total_ && batches_done_ >= *batches_total_;
  if (!drawn_ || last || now - last_draw_ >= options_.min_redraw_seconds) {
    last_draw_ = now;
    draw(false);
  }
}

void ProgressDisplay::draw(bool final_draw, std::string_view note) {
  const double elapsed = clock_() - epoch_start_;
  const double rate =
      elapsed > 0 ? static_cast<double>(batches_done_ - first_batch_) / elapsed : 0.0;
  std::string line = epoch_label(period_, epoch_, epochs_total_);
  if (batches_total_ && *batches_total_ > 0) {
    const double frac = std::clamp(
        static_cast<double>(batches_done_) / static_cast<double>(*batches_total_), 0.0, 1.0);
    const auto width = static_cast<std::size_t>(options_.bar_width);
    const auto full = static_cast<std::size_t>(std::floor(frac * static_cast<double>(width)));
    std::string bar(full, '=');
    if (full < width) bar += '>';
    bar.resize(width, ' ');
    line += fmt::format(" [{}] {}/{}", bar, batches_done_, *batches_total_);
  } else {
    line += fmt::format(" {} {}", batches_done_, batches_);
  }
  if (rate > 0) line += fmt::format("  {:.1f} {}/s", rate, batch_);
  if (final_draw) {
    line += fmt::format("  {:.1f}s", elapsed);
  } else if (batches_total_ && rate > 0) {
    line += "  ETA " + format_duration(static_cast<double>(*batches_total_ - batches_done_) / rate);
  }
  line += metrics_text(latest_);
  if (!note.empty()) line += fmt::format("  {}", note);
  // Spaces wipe what a longer previous line left behind.
  const std::size_t w = display_width(line);
  std::string out = "\r" + line;
  if (w < last_width_) out.append(last_width_ - w, ' ');
  last_width_ = w;
  if (final_draw) out += '\n';
  write(out);
  drawn_ = !final_draw;
}

void ProgressDisplay::on_epoch_end(long epoch, const Logs& logs, std::string_view note) {
  epoch_ = epoch;
  for (const auto& [k, v] : logs) latest_[k] = v;
  if (live_) {
    draw(true, note);
    return;
  }
  const double elapsed = clock_() - epoch_start_;
  const long run_now = batches_done_ - first_batch_;
  std::string line = epoch_label(period_, epoch_, epochs_total_) + ":";
  if (run_now > 0) {
    line += fmt::format(" {} {} in {:.1f}s", run_now, batches_, elapsed);
    if (elapsed > 0)
      line += fmt::format(" ({:.1f} {}/s)", static_cast<double>(run_now) / elapsed, batch_);
  } else {
    line += fmt::format(" {:.1f}s", elapsed);
  }
  line += metrics_text(latest_);
  if (!note.empty()) line += fmt::format("  {}", note);
  write(line + "\n");
}

void ProgressDisplay::set_names(std::string period, std::string batch, std::string batches) {
  period_ = std::move(period);
  batch_ = std::move(batch);
  batches_ = std::move(batches);
}

void ProgressDisplay::finish() {
  if (!drawn_) return;
  write("\n");
  drawn_ = false;
  last_width_ = 0;
}

void ProgressDisplay::message(std::string_view text) {
  if (live_ && drawn_) {
    // Wipe the bar, print the message on its own line, then put the bar back.
    std::string out = "\r";
    out.append(last_width_, ' ').append("\r").append(text).append("\n");
    write(out);
    last_width_ = 0;
    draw(false);
    return;
  }
  write(std::string(text) + "\n");
}

}  // namespace vigil
