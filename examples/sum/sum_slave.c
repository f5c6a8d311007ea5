/*
 * sum-slave: serves the sum example's typed handlers (sum.Adder, see
 * sum_handlers.h) until SIGINT or SIGTERM. Any other method is refused with
 * 606 UNKNOWN_METHOD.
 *
 *   sum-slave --host H --port P --channel C [--grace-ms N] [--name NAME]
 *             [--heartbeat-ms N] [--heartbeat-tolerance-ms N]
 *             [--mode M] [--workers N] [--queue N] [--metrics HOST:PORT]
 *             [--secret-file PATH]
 *
 * Once it accepts connections it prints exactly one line, `listening on H:P`
 * with the port actually bound (useful with --port 0) -- and with --metrics,
 * `metrics on H:P` on the next line -- and flushes stdout, so that a script
 * can wait for that line before it starts a master. The command
 * line, the signal handling and that line are the library's ia_slave_main()
 * (slave/main.c); what is particular to this slave is its
 * handlers.
 */
#include "interaction/interaction.h"
#include "sum_handlers.h"

/* The generated sum_adder_serve() (called by sum_serve()) registers one
 * handler per method. */
static ia_code serve(ia_slave *slave, const ia_slave_config *config, void *user) {
  (void)config;
  (void)user;
  return sum_serve(slave);
}

int main(int argc, char **argv) {
  static const ia_slave_main_spec spec = {
      .program = "sum-slave",
      .default_name = "sum-slave",
      .name_help = "name sent to the master",
      .about = "Prints `listening on H:P` once it accepts connections; serves until SIGINT or SIGTERM.\n",
      .serve = serve,
  };
  return ia_slave_main(argc, argv, &spec);
}
