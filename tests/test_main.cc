#define BOOST_TEST_MODULE blockkv
#include <boost/test/unit_test.hpp>
