/* edgedigit: DebugLog for Arduino_TensorFlowLite built without the Arduino core (the library's own lives
 * in system_setup.cpp, which needs Arduino.h and Serial). Hand-written. The firmware reports over its own
 * serial protocol; TFLM's log lines are dropped (the library is built with TF_LITE_STRIP_ERROR_STRINGS). */
#include "tensorflow/lite/micro/debug_log.h"

extern "C" void DebugLog(const char *s) { (void)s; }
