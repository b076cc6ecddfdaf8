// storage/crc32c.hpp — CRC-32C (Castagnoli), the checksum of journal records: the SSE4.2
// instruction where the CPU has it, a table otherwise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bp::storage {

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n);

}  // namespace bp::storage
