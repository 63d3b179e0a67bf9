/* edgedigit: the declarations TFLM's micro_mutable_op_resolver.h and kernels/micro_ops.h include from
 * signal/micro/kernels/irfft.h, for TFLM trees shipped without the signal/ library (audio front-end kernels,
 * never registered by edgedigit's runners: AddIrfft/AddRfft are not called, so nothing is linked). Hand-written. */
#ifndef EDGEDIGIT_SIGNAL_SHIM_IRFFT_H
#define EDGEDIGIT_SIGNAL_SHIM_IRFFT_H

#include "tensorflow/lite/micro/micro_common.h"

namespace tflite {
namespace tflm_signal {

TFLMRegistration* Register_IRFFT();
TFLMRegistration* Register_IRFFT_FLOAT();
TFLMRegistration* Register_IRFFT_INT16();
TFLMRegistration* Register_IRFFT_INT32();

}  // namespace tflm_signal
}  // namespace tflite

#endif /* EDGEDIGIT_SIGNAL_SHIM_IRFFT_H */
