use observe::observe;

#[observe]
unsafe fn read(ptr: *const u32) -> u32 {
    unsafe { *ptr }
}

#[observe]
extern "C" fn callback(x: i32) -> i32 {
    x * 2
}

fn main() {
    let value = 7;
    assert_eq!(unsafe { read(&value) }, 7);
    assert_eq!(callback(2), 4);
}
