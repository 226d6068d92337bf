// The one translation unit that holds Catch2's main(); the test files only include the header.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
