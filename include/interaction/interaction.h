/* The umbrella header: everything public in Interaction. */
#ifndef INTERACTION_H
#define INTERACTION_H
#include "interaction/master.h"
#include "interaction/slave.h"
#include "interaction/status.h"
#endif
