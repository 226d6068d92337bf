#include "membrane/core/background_priority.hpp"

#include <pthread.h>
#include <sched.h>

namespace membrane::core {

void run_as_background_thread() {
  sched_param param{};
  param.sched_priority = 0;
  pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
}

}  // namespace membrane::core
