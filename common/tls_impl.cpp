// common/tls_impl.cpp — Asio's TLS support, compiled once (the rest of Asio is compiled in
// common/asio_impl.cpp); only what speaks TLS (the API server, the CLI) links it.
#include <boost/asio/ssl/impl/src.hpp>
