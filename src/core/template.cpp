// Checkpoint name templates. Rendering goes through fmt with the user's spec, and the result is
// sanitized afterwards, because a metric value or name must never be able to form a path.
#include "vigil/template.hpp"

#include <cctype>
#include <string>

#include <fmt/format.h>

namespace vigil {

namespace {

bool is_field_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '/' ||
         c == '-';
}

bool is_safe_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '=' ||
         c == '+' || c == '-';
}

}  // namespace

NameTemplate NameTemplate::parse(std::string_view text) {
  NameTemplate out;
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) out.parts.push_back(Part{false, std::move(literal), {}});
    literal.clear();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        literal.push_back('}');
        ++i;
        continue;
      }
      throw OptionError(fmt::format(
          "filename template \"{}\": unmatched '}}' at position {} (write '}}}}' for a brace)",
          text, i));
    }
    if (c != '{') {
      literal.push_back(c);
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '{') {
      literal.push_back('{');
      ++i;
      continue;
    }
    auto close = text.find('}', i + 1);
    if (close == std::string_view::npos) {
      throw OptionError(fmt::format(
          "filename template \"{}\": unmatched '{{' at position {} (write '{{{{' for a brace)",
          text, i));
    }
    std::string_view inner = text.substr(i + 1, close - i - 1);
    std::string_view name = inner.substr(0, inner.find(':'));
    std::string_view spec =
        name.size() < inner.size() ? inner.substr(name.size() + 1) : std::string_view{};
    if (name.empty()) {
      throw OptionError(fmt::format(
          "filename template \"{}\": empty field at position {} (use {{epoch}}, {{step}} or a "
          "metric name)",
          text, i));
    }
    for (char n : name) {
      if (!is_field_char(n)) {
        throw OptionError(fmt::format(
            "filename template \"{}\": field name \"{}\" may only hold letters, digits, '_', '.', "
            "'/' and '-'",
            text, name));
      }
    }
    // A width or precision of 999999999 made every save format a gigabyte of padding (seconds,
    // then cut to 128 bytes by sanitize_name): no folder name needs more than 64.
    for (std::size_t k = 0; k < spec.size();) {
      if (!std::isdigit(static_cast<unsigned char>(spec[k]))) {
        ++k;
        continue;
      }
      std::size_t end = k;
      while (end < spec.size() && std::isdigit(static_cast<unsigned char>(spec[end]))) ++end;
      if (end - k > 9 || std::stoi(std::string(spec.substr(k, end - k))) > 64)
        throw OptionError(fmt::format(
            "filename template \"{}\": {{{}}} asks for a width or precision of {}; at most 64",
            text, inner, spec.substr(k, end - k)));
      k = end;
    }
    if (spec.find('{') != std::string_view::npos) {
      throw OptionError(
          fmt::format("filename template \"{}\": nested fields are not supported", text));
    }
    flush();
    out.parts.push_back(Part{true, std::string(name), std::string(spec)});
    i = close;
  }
  flush();
  if (out.parts.empty()) throw OptionError("filename template is empty");
  return out;
}

std::vector<std::string> NameTemplate::fields() const {
  std::vector<std::string> out;
  for (const auto& p : parts)
    if (p.is_field) out.push_back(p.text);
  return out;
}

std::string NameTemplate::render(std::int64_t epoch, std::int64_t step, const Logs& metrics) const {
  std::string out;
  for (const auto& p : parts) {
    if (!p.is_field) {
      out += p.text;
      continue;
    }
    std::string pattern = p.spec.empty() ? "{}" : "{:" + p.spec + "}";
    try {
      if (p.text == "epoch") {
        out += fmt::format(fmt::runtime(pattern), epoch);
      } else if (p.text == "step") {
        out += fmt::format(fmt::runtime(pattern), step);
      } else if (auto it = metrics.find(p.text); it != metrics.end()) {
        out += fmt::format(fmt::runtime(pattern), it->second);
      } else {
        out += "none";
      }
    } catch (const fmt::format_error& e) {
      throw OptionError(
          fmt::format("filename template field {{{}:{}}}: {} (integer fields take "
                      "specs like 04d, metrics like .4f)",
                      p.text, p.spec, e.what()));
    }
  }
  return sanitize_name(out);
}

std::string sanitize_name(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) out.push_back(is_safe_char(c) ? c : '_');
  if (out.empty()) out.push_back('_');
  if (out.front() == '.') out.front() = '_';
  if (out.size() > 128) out.resize(128);
  return out;
}

}  // namespace vigil
