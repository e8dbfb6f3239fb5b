// Entry point of the lifeboat command line; src/main.cc calls it.
#pragma once

namespace lifeboat::cli {

// Parses the arguments, runs the command, returns the process exit code.
int Main(int argc, char** argv);

}  // namespace lifeboat::cli
