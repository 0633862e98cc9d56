// Small RAII helpers around jansson, shared by the core.
#pragma once

#include <jansson.h>

#include <cstdlib>
#include <memory>
#include <string>

namespace dingtalk
{

struct JsonDeleter {
    void operator()(json_t *j) const { json_decref(j); }
};
using JsonPtr = std::unique_ptr<json_t, JsonDeleter>;

// Compact JSON text of a value; UTF-8 kept as is (what DingTalk counts in bytes).
inline std::string json_dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    std::string out = s ? s : "";
    std::free(s);
    return out;
}

} // namespace dingtalk
