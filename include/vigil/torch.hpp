// Everything of vigil::torch (the libtorch adapter, the Trainer and its callbacks) and of
// vigil::core in one include.
#pragma once

#include "vigil/torch/backup_and_restore.hpp"
#include "vigil/torch/callback.hpp"
#include "vigil/torch/csv_logger.hpp"
#include "vigil/torch/data_source.hpp"
#include "vigil/torch/datasets.hpp"
#include "vigil/torch/distributed.hpp"
#include "vigil/torch/early_stopping.hpp"
#include "vigil/torch/ema.hpp"
#include "vigil/torch/learning_curve_plot.hpp"
#include "vigil/torch/model_checkpoint.hpp"
#include "vigil/torch/models.hpp"
#include "vigil/torch/module_state.hpp"
#include "vigil/torch/optimizer_state.hpp"
#include "vigil/torch/progress_bar.hpp"
#include "vigil/torch/reduce_lr_on_plateau.hpp"
#include "vigil/torch/rng_state.hpp"
#include "vigil/torch/sharded_checkpoint.hpp"
#include "vigil/torch/tensor_bridge.hpp"
#include "vigil/torch/trainer.hpp"
#include "vigil/vigil.hpp"
