// api/tls_impl.cpp — Asio's TLS support, compiled once (the rest of Asio is compiled in
// common/asio_impl.cpp); only the API server links OpenSSL.
#include <boost/asio/ssl/impl/src.hpp>
