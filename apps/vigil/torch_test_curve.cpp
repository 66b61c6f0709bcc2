// --eval-test-every-epoch: the test set's metrics beside every row of metrics.csv, recorded to
// judge stopping rules afterwards (what a rule saves, what test loss it gives up). Nothing that
// trains, stops or chooses a checkpoint reads them.
#include <fmt/core.h>

#include <utility>

#include "torch_run.hpp"
#include "vigil/error.hpp"
#include "vigil/torch/module_state.hpp"

namespace vigil::cli {

namespace {

namespace vt = vigil::torch;

// Adds "test_<metric>" to the record of the epoch that just ended, before any other callback
// sees the history: checkpoints then keep the test columns, and a resume brings them back.
// Epoch-end logs, which every other callback decides on, stay without them, and the epoch's
// "seconds" (what a time budget counts) was measured before this evaluation.
class TestCurve : public vt::Callback {
 public:
  explicit TestCurve(TestEvaluator evaluate) : evaluate_(std::move(evaluate)) {}
  std::string name() const override { return "test_curve"; }

  void on_epoch_end(vt::TrainContext& ctx, int, const Logs&) override {
    if (ctx.history.empty() || !ctx.model) return;
    const Logs test = ctx.validated_weights != nullptr ? on_validated_weights(ctx) : evaluate_();
    for (const auto& [name, value] : test) ctx.history.back().logs["test_" + name] = value;
  }

 private:
  // The weights validation measured (--ema-validate's average), swapped in for the evaluation and
  // the training weights copied back afterwards, as ModelEma does around validation.
  Logs on_validated_weights(vt::TrainContext& ctx) const {
    const vt::NamedTensors training = vt::module_state(*ctx.model).clone();
    vt::load_module_state(*ctx.model, ctx.validated_weights->views());
    Logs test;
    try {
      test = evaluate_();
    } catch (...) {
      vt::load_module_state(*ctx.model, training.views());
      throw;
    }
    vt::load_module_state(*ctx.model, training.views());
    return test;
  }

  TestEvaluator evaluate_;
};

}  // namespace

void check_eval_test(const RunConfig& config) {
  if (!config.eval_test_every_epoch) return;
  if (config.early_stopping.monitor.rfind("test_", 0) == 0)
    throw OptionError(fmt::format(
        "--monitor {}: the test set is for reporting, not model selection: monitor a val_ "
        "metric (--eval-test-every-epoch only records the test curve)",
        config.early_stopping.monitor));
}

std::shared_ptr<vt::Callback> make_test_curve(TestEvaluator evaluate) {
  return std::make_shared<TestCurve>(std::move(evaluate));
}

}  // namespace vigil::cli
