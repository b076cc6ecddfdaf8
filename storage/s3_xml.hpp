// storage/s3_xml.hpp — the XML bodies of the S3 API that the s3:// store reads and writes
// (ListObjectsV2 pages, DeleteObjects requests and results, error bodies), sans-io.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "storage/object_store.hpp"

namespace bp::storage {

// One page of ListObjectsV2: keys as the server has them (store prefix included), ETags
// unquoted.
struct ListPage {
  std::vector<ObjectInfo> objects;
  bool truncated = false;
  std::string next_token;  // NextContinuationToken, when truncated
};
Result<ListPage> parse_list_page(std::string_view xml);

// A key that DeleteObjects could not delete.
struct DeleteFailure {
  std::string key, code, message;
};
// The <Error> entries of a DeleteResult (Quiet mode lists nothing else).
Result<std::vector<DeleteFailure>> parse_delete_result(std::string_view xml);

// The body of a failed request: <Error><Code>…</Code><Message>…</Message>…</Error>.
struct S3Error {
  std::string code, message, request_id;
};
// Empty fields when the body is not an S3 error (a proxy's HTML page, a HEAD's no body).
S3Error parse_error_body(std::string_view xml);

// The DeleteObjects request body for keys (at most 1000), in Quiet mode.
std::string delete_request_body(const std::vector<std::string>& keys);

// Text escaped for XML content: & < > " '.
std::string xml_escape(std::string_view s);

}  // namespace bp::storage
