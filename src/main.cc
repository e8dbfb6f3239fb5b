#include "cli/main.h"

int main(int argc, char** argv) { return lifeboat::cli::Main(argc, argv); }
